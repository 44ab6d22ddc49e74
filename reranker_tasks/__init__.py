"""Pipeline logic of the reranker retraining DAG: one module per step, no Airflow imports.

Steps: :mod:`~reranker_tasks.extract`, :mod:`~reranker_tasks.validate`, :mod:`~reranker_tasks.split`,
:mod:`~reranker_tasks.train`, :mod:`~reranker_tasks.evaluate`, :mod:`~reranker_tasks.gate`,
:mod:`~reranker_tasks.model_card`, :mod:`~reranker_tasks.publish`. Configuration: :mod:`~reranker_tasks.config`.
"""

__version__ = "0.1.0"
