"""Tests that need a real Airflow deployment (api-server, scheduler, dag-processor, triggerer) on loopback."""
