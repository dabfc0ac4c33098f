"""APIApp(model, input_shape=...): a bare Keras model served on JSON arrays (ModelAdapter)."""

from __future__ import annotations

import asyncio

import httpx
import keras
import numpy as np
import pytest

from ktlite.apps import APIApp, ModelAdapter


def dense_model(dtype: str = "float32") -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), dtype=dtype)
    x = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32"))(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="categorical_crossentropy")
    return model


def ask(app: APIApp, body: dict, path: str = "/predict") -> httpx.Response:
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post(path, json=body)

    return asyncio.run(main())


def test_a_bare_model_serves_arrays_of_its_input_shape_as_json_lists():
    model = dense_model()
    app = APIApp(model, input_shape=(4,))
    rows = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]]

    response = ask(app, {"inputs": rows})

    assert response.status_code == 200
    np.testing.assert_allclose(
        response.json()["predictions"], model.predict(np.array(rows), verbose=0), rtol=1e-5
    )
    assert app.metadata["input_shape"] == [4] and app.metadata["output_shape"] == [3]


@pytest.mark.parametrize(
    "inputs, fragment",
    [
        ([[0.1, 0.2, 0.3]], "`inputs[0]` must have shape (4,)"),
        ([[0.1, 0.2, 0.3, 0.4], [[1, 2], [3, 4]]], "`inputs[1]` must have shape (4,)"),
        ([[1, 2, 3, [4]]], "ragged"),
        ([[0.1, "x", 0.3, 0.4]], "only numbers"),
        ([[True, False, True, False]], "only numbers"),
        # numpy reads true beside numbers as 1: refused by value, not by the array's dtype
        ([[0.1, 0.2, 0.3, 0.4], [True, 1.0, 2.0, 3.0]],
         "`inputs[1]` must hold only numbers. Received a value of type bool: True"),
        ([[0.1, None, 0.3, 0.4]], "Received a value of type NoneType"),
        ([[10**400, 0, 0, 0]], "`inputs[0]` must hold numbers within the range of float32"),
    ],
)
def test_wrong_shapes_and_types_get_422_naming_the_input(inputs, fragment):
    app = APIApp(dense_model(), input_shape=(4,))
    response = ask(app, {"inputs": inputs})
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_an_integer_past_int64_within_float_range_is_read_as_a_float():
    app = APIApp(dense_model(), input_shape=(4,))
    assert ask(app, {"inputs": [[10**30, 0, 0, 0]]}).status_code == 200


def test_an_int_model_takes_token_ids_and_refuses_fractions_and_the_texts_alias():
    app = APIApp(dense_model("int32"), input_shape=(4,))
    assert ask(app, {"inputs": [[1, 2, 3, 4]]}).status_code == 200
    fraction = ask(app, {"inputs": [[1, 2.5, 3, 4]]})
    assert fraction.status_code == 422 and "integers" in fraction.json()["detail"]
    for value in (True, 10**30):  # a flag read as id 1; an integer past int64
        refused = ask(app, {"inputs": [[value, 2, 3, 4]]})
        assert refused.status_code == 422 and "`inputs[0]` must hold" in refused.json()["detail"]
    assert ask(app, {"texts": [[1, 2, 3, 4]]}).status_code == 422  # not a text predictor
    assert ask(app, {"text": "a"}, path="/explain").status_code == 404


def test_openapi_describes_one_input_as_nested_arrays_of_the_shape():
    adapter = ModelAdapter(dense_model("int32"), input_shape=(4,))
    assert adapter.json_input_schema() == {
        "type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
    }


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({}, ValueError, "`input_shape` is needed"),
        ({"input_shape": (5,)}, ValueError, "must match the model's input shape"),
        ({"input_shape": (0,)}, ValueError, "positive ints"),
        ({"input_shape": 4}, ValueError, "input_shape=4"),
    ],
)
def test_bad_input_shapes_are_refused_with_the_reason(kwargs, error, match):
    with pytest.raises(error, match=match):
        APIApp(dense_model(), **kwargs)


def test_input_shape_is_refused_for_a_predictor():
    from tests.apps.fakes import FakePredictor

    with pytest.raises(ValueError, match="bare keras.Model only"):
        APIApp(FakePredictor(), input_shape=(4,))


def test_token_ids_past_the_embedding_get_422_and_never_fail_a_good_request():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    app = APIApp(model, input_shape=(4,))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            bodies = [[[1, 2, 3, 4]], [[5, 1, 2, 300]], [[1, 1, 1, 1]], [[-1, 0, 0, 0]]]
            return await asyncio.gather(*(c.post("/predict", json={"inputs": b})
                                          for b in bodies))

    codes = [r.status_code for r in asyncio.run(main())]
    assert codes == [200, 422, 200, 422]
    assert ask(app, {"inputs": [[0, 1, 2, 10]]}).json()["detail"].endswith(
        "must hold token ids in [0, 10) (the rows of the model's first embedding).")


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.dense(x)


def test_a_model_without_symbolic_inputs_is_refused_with_the_wrap_that_serves_it():
    sub = _Subclassed()
    sub(np.zeros((1, 4), "float32"))
    for model in (sub, keras.Sequential([keras.layers.Dense(3)])):
        with pytest.raises(ValueError, match=r"must have symbolic inputs .*keras\.Model\(inputs, "
                                             rf"model\(inputs\)\).*a {type(model).__name__} "):
            APIApp(model, input_shape=(4,))
    # The wrap the message gives is served.
    inputs = keras.Input((4,))
    app = APIApp(keras.Model(inputs, sub(inputs)), input_shape=(4,))
    answer = ask(app, {"inputs": [[0.1, 0.2, 0.3, 0.4]]})
    assert answer.status_code == 200
    np.testing.assert_allclose(answer.json()["predictions"][0],
                               sub(np.array([[0.1, 0.2, 0.3, 0.4]], "float32")).numpy()[0],
                               rtol=1e-5)


@pytest.mark.parametrize("dtype, huge", [("float32", 1e39), ("float16", 1e5)])
def test_a_number_past_the_models_float_range_gets_422_naming_the_input(dtype, huge):
    app = APIApp(dense_model(dtype), input_shape=(4,))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(
                c.post("/predict", json={"inputs": [[0.1, 0.2, 0.3, 0.4], [huge, 0, 0, 0]]}),
                c.post("/predict", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]}),
            )

    refused, good = asyncio.run(main())
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(
        f"Invalid inputs: `inputs[1]` must hold numbers within the range of {dtype}")
    assert good.status_code == 200 and np.isfinite(good.json()["predictions"]).all()
