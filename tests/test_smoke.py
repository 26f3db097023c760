from django.db import connection


def test_healthz_answers_ok_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_suite_runs_on_postgresql(db):
    assert connection.vendor == "postgresql"
