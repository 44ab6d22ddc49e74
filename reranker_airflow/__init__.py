"""The Airflow side of the reranker workflow: what the DAG files share, kept out of them so they hold only wiring.

``reranker_tasks`` never imports Airflow; this package is the one place besides ``dags/`` and ``plugins/`` that
does. One module per concern:

* :mod:`reranker_airflow.context`: the run context a task body needs (config, artifacts, Hub token, SQL URL);
* :mod:`reranker_airflow.defaults`: the Assets, the retry policy and the settings every DAG shares;
* :mod:`reranker_airflow.alerts`: the e-mail notifier, deadline alerts and the failure record;
* :mod:`reranker_airflow.params`: the retraining DAGs' Params (the trigger form);
* :mod:`reranker_airflow.links`: the monitoring plugin's extra links on their tasks.

Importing any of them stays cheap (a test parses the DAG files without torch, pandas, GX, ...): the heavy
``reranker_tasks`` modules are imported inside functions, at task run time.
"""
