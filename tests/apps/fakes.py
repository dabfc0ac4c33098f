"""Fake predictors for the app tests: the JSON hooks of `ktlite.predictor.Predictor`, no model.

The class is decided by a keyword ("bird" -> animal, "tree" -> plant, else rock); model calls
are recorded, and an optional gate (a `threading.Event`) holds every call until it is set.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

CLASSES = ["animal", "plant", "rock"]


def expected_proba(text: str) -> np.ndarray:
    index = 0 if "bird" in text else 1 if "tree" in text else 2
    row = np.full(3, 0.1)
    row[index] = 0.8
    return row


def expected_label(text: str) -> str:
    return CLASSES[int(np.argmax(expected_proba(text)))]


class FakePredictor:
    """A text classifier through the predictor hooks; `explain` via ktlite.text.explain."""

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.gate = gate
        self.entered = threading.Event()  # set when a model call has started
        self._lock = threading.Lock()

    metadata = {"predictor": "tests.FakePredictor", "label_mode": "multiclass",
                "classes": CLASSES, "versions": {"ktlite": "test"}}
    label_mode = "multiclass"

    def get_classes(self) -> list[str]:
        return list(CLASSES)

    def json_input_schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def inputs_from_json(self, items: list[Any]) -> list[str]:
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"`texts` must hold only str. Received: texts[{i}]={item!r}")
        return list(items)

    def predict_outputs(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.batches.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("model exploded")
        return np.stack([expected_proba(t) for t in texts]).astype(np.float32)

    predict_proba = predict_outputs  # what ktlite.text.explain calls

    def json_response(self, outputs: np.ndarray, return_proba: bool = False) -> dict[str, Any]:
        answer: dict[str, Any] = {"predictions": [CLASSES[i] for i in outputs.argmax(axis=1)]}
        if return_proba:
            answer["probabilities"] = outputs.tolist()
            answer["classes"] = list(CLASSES)
        return answer

    def explain(self, text: str, top_k: int = 10) -> Any:
        from ktlite.text.explain import explain

        return explain(self, text, top_k=top_k)

    @property
    def texts_seen(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


class FakeRegressor(FakePredictor):
    """Predicts a text's length; no explain; refuses return_proba like ClassifierPredictor."""

    metadata = {"predictor": "tests.FakeRegressor", "label_mode": "regression"}
    explain = None

    def predict_outputs(self, texts: list[str]) -> np.ndarray:
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    def json_response(self, outputs: np.ndarray, return_proba: bool = False) -> dict[str, Any]:
        if return_proba:
            raise ValueError("return_proba=true needs a classifier; this one does regression.")
        return {"predictions": [float(row[0]) for row in outputs]}
