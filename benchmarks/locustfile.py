"""Locust scenario of the MLOps write-up against `realfake serve`: health and predict, 1:4.

    realfake serve runs/NAME --port 8000 &
    locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --headless -u 200 -r 50 -t 30s

32 px JPEGs from the embedded CIFAKE test split go to the write-up's POST /predict/ (field
``data``); one task in six sends a hostile upload, which must get its 4xx (never a 5xx).
"""

from __future__ import annotations

import random

from locust import HttpUser, between, task

from realfake.data.embedded import embedded_data_path

IMAGES = [p.read_bytes() for p in sorted((embedded_data_path() / "test").glob("*/*.jpg"))]


class ServeUser(HttpUser):
    wait_time = between(0.0, 0.1)

    @task(1)
    def health(self) -> None:
        self.client.get("/health")

    @task(4)
    def predict(self) -> None:
        image = random.choice(IMAGES)
        with self.client.post(
            "/predict/", files={"data": ("x.jpg", image, "image/jpeg")}, catch_response=True
        ) as answer:
            if answer.status_code != 200 or set(answer.json()) != {"prediction", "probs"}:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")

    @task(1)
    def not_an_image(self) -> None:
        with self.client.post(
            "/predict",
            files={"files": ("notes.txt", b"not an image", "text/plain")},
            name="/predict (not an image)",
            catch_response=True,
        ) as answer:
            if answer.status_code == 415:
                answer.success()
            else:
                answer.failure(f"expected 415, got {answer.status_code}")
