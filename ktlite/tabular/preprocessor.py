"""`TabularPreprocessor`: column statistics and vocabularies learned at fit, applied in-graph.

Each feature column is numeric or categorical (detected from the training values, or
named by the user):

- **numeric**: standardized with the training mean and standard deviation. A missing
  value (NaN) becomes the training mean (0 after standardizing) and raises the column's
  missing flag, a 0/1 feature the model sees beside the value. Durations (timedelta
  columns) are numeric, in seconds, so a JSON request sends seconds.
- **categorical**: values are read as text (`ktlite.tabular.columns.category_text`) and
  looked up in the column's vocabulary, the most frequent training values (at most
  `max_categories`). Id 0 is the unknown bucket: a value never seen in training maps to
  it instead of failing. A missing category is the text ``""``, a category of its own
  when training had missing values. A number sent for a categorical column whose text
  is not a category matches the one category that reads as the same number, so the
  ``"00501"`` a CSV file kept as written meets the 501 of `pandas.read_csv` or a JSON row,
  and a boolean the category reading as the same truth value in any case (a CSV file's
  ``"true"``, a bool column's ``"True"``; see `TabularPreprocessor.raw_batch`).

`transform` runs in TensorFlow (one `tf.lookup.StaticHashTable` for every categorical
column), so `tf.data` training, `predict` and an exported SavedModel share one graph.
The raw batch it takes is ``{"numeric": float32 (batch, n_numeric), "categorical":
string (batch, n_categorical)}`` in the order of `numeric_columns` and
`categorical_columns` (a key is absent when its group has no column); it returns the
model inputs ``{"numeric", "missing", "categorical"}`` (categorical ids are int32).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ktlite import labels as _labels
from ktlite import saving
from ktlite._console import warn
from ktlite.arguments import check_positive_int
from ktlite.columns import is_series
from ktlite.labels import LabeledPreprocessor, LabelEncoder
from ktlite.tabular import columns as _columns

FORMAT_VERSION = 1
CONFIG_FILE = "preprocessor.json"
DEFAULT_MAX_CATEGORIES = 1000
UNKNOWN_ID = 0
_KEY_SEPARATOR = "\x1f"
_CONFIG_KEYS = frozenset(
    {"format_version", "task", "numeric", "categorical", "dropped_columns", "labels"}
)
# Written since 2026-12-04 and 2026-12-08; older files lack them: they read arrays
# numeric first, and their date categories are brought to today's form
# (`columns.current_categories`).
_OPTIONAL_KEYS = frozenset({"feature_order", "category_form"})
# The form `columns.category_text` gives categories, saved so that a loaded preprocessor
# rewrites no category of a file written in today's form.
CATEGORY_FORM = 2


def _names(value: Any, arg: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(c, str) for c in value):
        raise TypeError(f"`{arg}` must be a list of column names. Received: {arg}={value!r:.80}")
    return list(value)


def _column_stats(values: np.ndarray, column: str) -> dict[str, Any]:
    present = values[~np.isnan(values)].astype(np.float64)
    if present.size == 0:
        warn(
            f"Numeric column {column!r} is missing in every training row; the model cannot "
            "learn from it. Drop it with `ignore_columns`.",
        )
        return {"name": column, "mean": 0.0, "std": 1.0}
    std = float(present.std())
    return {"name": column, "mean": float(present.mean()), "std": std if std > 1e-12 else 1.0}


def _vocabulary(values: np.ndarray, max_categories: int) -> list[str]:
    counts = collections.Counter(values.tolist())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ranked[:max_categories]]


class TabularPreprocessor(LabeledPreprocessor):
    """Learns per-column statistics, vocabularies and labels; transforms rows in-graph.

    Args:
        numeric_columns: columns to read as numbers, overriding detection.
        categorical_columns: columns to read as categories, overriding detection (e.g. an
            integer code such as a zip code).
        max_categories: the most categories kept per categorical column (the most
            frequent); rarer values map to the unknown bucket. Default 1000.
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"`` or None (detect).
        class_names: class names in output order; inferred (sorted) when None.

    Attributes:
        task: ``"tabular"``.
        numeric: fitted numeric columns, ``[{"name", "mean", "std"}]``.
        categorical: fitted categorical columns, ``[{"name", "categories"}]``.
        dropped_columns: columns ignored when present in prediction inputs (the label
            columns and `ignore_columns` of the loader).
        labels: the `ktlite.labels.LabelEncoder`.

    Raises:
        TypeError: if `max_categories` is not an int, or `numeric_columns` or
            `categorical_columns` not a column name or a list of them.
        ValueError: for invalid arguments (`max_categories` < 1 among them), or a column
            named both numeric and categorical.

    Example:
        >>> preproc = TabularPreprocessor(categorical_columns=["city"])
        >>> preproc.fit({"age": np.array([40, 50]), "city": np.array(["Rome", "Oslo"])},
        ...             ["yes", "no"])
        >>> preproc.numeric_columns, preproc.categorical_columns
        (['age'], ['city'])
    """

    task = "tabular"
    predictor_class = "ktlite.tabular.predictor.TabularPredictor"

    def __init__(
        self,
        numeric_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        label_mode: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self._numeric_request = _names(numeric_columns, "numeric_columns")
        self._categorical_request = _names(categorical_columns, "categorical_columns")
        both = sorted(set(self._numeric_request) & set(self._categorical_request))
        if both:
            raise ValueError(
                f"Columns {both} are named in both `numeric_columns` and `categorical_columns`."
            )
        self.max_categories = check_positive_int(max_categories, "max_categories")
        self.labels = LabelEncoder(label_mode, class_names)
        self.numeric: list[dict[str, Any]] = []
        self.categorical: list[dict[str, Any]] = []
        self.dropped_columns: list[str] = []
        self.feature_order: list[str] = []
        self._fitted = False
        self._table = None
        # Per categorical column, {number: category} (`_columns.number_categories`); derived
        # from `categorical` when fitted or loaded, never saved.
        self._by_number: list[dict[Any, str]] = []

    # ------------------------------------------------------------------ facts
    @property
    def numeric_columns(self) -> list[str]:
        """The numeric feature columns, in model order."""
        return [c["name"] for c in self.numeric]

    @property
    def categorical_columns(self) -> list[str]:
        """The categorical feature columns, in model order."""
        return [c["name"] for c in self.categorical]

    @property
    def columns(self) -> list[str]:
        """Every feature column: numeric first, then categorical."""
        return self.numeric_columns + self.categorical_columns

    @property
    def category_sizes(self) -> list[int]:
        """Ids per categorical column, the unknown bucket included."""
        return [len(c["categories"]) + 1 for c in self.categorical]

    @property
    def is_fitted(self) -> bool:
        """Whether the columns and the labels are fitted."""
        return self._fitted and self.labels.is_fitted

    # ------------------------------------------------------------------ fitting
    def fit_labels(self, y: Any, name: str = "y_train") -> TabularPreprocessor:
        """Learns the label mode and classes (see `ktlite.labels.LabelEncoder.fit`).

        Args:
            y: the training labels (class names or ids, 0/1 rows, or numeric targets).
            name: the argument name used in error messages. Defaults to `"y_train"`.

        Returns:
            This preprocessor.

        Raises:
            ValueError: for missing, mixed or ambiguous labels, or a single class.

        Example:
            >>> TabularPreprocessor().fit_labels(["no", "yes", "no"]).labels.class_names
            ['no', 'yes']
        """
        self.labels.fit(y, name=name)
        return self

    def encode_labels(self, y: Any, name: str = "y") -> np.ndarray:
        """Encodes labels with the fitted `labels`.

        Args:
            y: labels in the same form as the training labels.
            name: the argument name used in error messages. Defaults to `"y"`.

        Returns:
            ``int32`` class ids, a ``float32`` 0/1 matrix, or ``float32`` targets.

        Raises:
            ValueError: when the labels are not fitted, or for labels outside the classes.

        Example:
            >>> preproc.fit_labels(["no", "yes", "no"]).encode_labels(["yes"])
            array([1], dtype=int32)
        """
        return self.labels.encode(y, name=name)

    def fit_columns(
        self,
        columns: Mapping[str, Any],
        dropped_columns: Sequence[str] = (),
        name: str = "x_train",
        text_columns: Sequence[str] = (),
    ) -> TabularPreprocessor:
        """Learns column kinds, numeric statistics and category vocabularies.

        Args:
            columns: ``{column name: values}`` (or a DataFrame) of the training rows only.
            dropped_columns: columns to ignore at prediction time (labels, ids).
            name: the argument name used in messages.
            text_columns: the columns whose DataFrame dtype declares text
                (`_columns.text_dtype_columns`): categorical unless named in
                `numeric_columns`, missing cells only included. Read from `columns`
                itself when it is a DataFrame.

        Returns:
            This preprocessor.

        Raises:
            TypeError: for `columns` that are neither a mapping nor a DataFrame.
            ValueError: for no columns, or a requested column that is not there.

        Example:
            >>> TabularPreprocessor().fit_columns({"age": [40, None, 50]}).numeric
            [{'name': 'age', 'mean': 45.0, 'std': 5.0}]
        """
        if _columns.is_frame(columns):
            text_columns = _columns.text_dtype_columns(columns)
            columns = _columns.frame_columns(columns, name)
        expected = f"`{name}` must map at least one feature column to its values."
        if not isinstance(columns, Mapping):
            raise TypeError(f"{expected} Received: {type(columns).__name__}")
        if not columns:
            raise ValueError(f"{expected} Received: an empty {type(columns).__name__}")
        lengths = sorted({len(values) for values in columns.values()})
        if len(lengths) > 1:
            raise ValueError(f"`{name}` columns must be of one length. Received: lengths "
                             f"{lengths}")
        absent = [
            c for c in self._numeric_request + self._categorical_request if c not in columns
        ]
        if absent:
            raise ValueError(
                f"Columns {absent} are not feature columns of `{name}`; it has {list(columns)}."
            )
        numeric, categorical = [], []
        for column, values in columns.items():
            if column in self._categorical_request or column not in self._numeric_request and (
                column in text_columns or not _columns.is_numeric_column(values)
            ):
                vocab = _vocabulary(_columns.category_values(values, column, name),
                                    self.max_categories)
                categorical.append({"name": column, "categories": vocab})
            else:
                numbers_ = _columns.numeric_values(values, column, name)
                numeric.append(_column_stats(numbers_, column))
        self.numeric, self.categorical = numeric, categorical
        self.feature_order = list(columns)
        self.dropped_columns = [c for c in dropped_columns if c not in columns]
        self._fitted = True
        self._table = None
        self._by_number = self._number_maps()
        return self

    def fit(self, columns: Mapping[str, Any], y: Any) -> TabularPreprocessor:
        """Fits the labels and the columns (see `fit_labels` and `fit_columns`).

        Args:
            columns: ``{column name: values}`` (or a data frame) of the training rows only.
            y: the training labels, one per row.

        Returns:
            This preprocessor.

        Raises:
            ValueError: for any error of those two, or if `y` does not have one label per
                row of `columns`.

        Example:
            >>> TabularPreprocessor().fit({"age": [40, 50]}, [0, 1]).columns
            ['age']
        """
        self.fit_labels(y).fit_columns(columns, name="columns")
        rows = len(columns) if _columns.is_frame(columns) else len(next(iter(columns.values())))
        if rows != len(y):
            raise ValueError(f"`columns` and `y` must have the same rows. Received: {rows} "
                             f"rows and {len(y)} labels")
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError(
                "This TabularPreprocessor is not fitted: use the one returned by "
                "`tabular_from_df` / `tabular_from_array`, or call `fit` first."
            )

    # ------------------------------------------------------------------ raw batches
    def to_columns(self, data: Any, name: str = "inputs") -> dict[str, Any]:
        """Reads a DataFrame, a list of row dicts or a 2-D array as the feature columns.

        Columns in `dropped_columns` (e.g. the label) are ignored; any other unknown
        column, or a missing one, is an error.

        Args:
            data: a DataFrame, a list of ``{column: value}`` rows, one such dict or pandas
                Series (one row), or a 2-D array whose columns follow `feature_order` (the
                order of the training columns).
            name: the argument name used in messages.

        Returns:
            ``{column: values}`` for every feature column.

        Raises:
            TypeError: for another kind of input, or a row that is not a dict.
            ValueError: for no rows, or missing or unknown columns (named).

        Example:
            >>> preproc.to_columns([{"age": 41, "city": "Rome"}])
            {'age': [41], 'city': ['Rome']}
        """
        self._check_fitted()
        if _columns.is_frame(data):
            found = _columns.frame_columns(data, name)
            self._check_names(list(found), name)
            if len(data) == 0:
                raise ValueError(f"`{name}` must hold at least one row. Received: an empty frame")
            return {c: found[c] for c in self.columns}
        if isinstance(data, np.ndarray):
            order = self.feature_order
            if data.ndim != 2 or data.shape[1] != len(order):
                raise ValueError(
                    f"A `{name}` array must have shape (rows, {len(order)}), its columns "
                    f"in the training order {order}. Received: shape {data.shape}"
                )
            if len(data) == 0:
                raise ValueError(f"`{name}` must hold at least one row. Received: 0 rows")
            return _columns.array_columns(data, order, name)
        if is_series(data):  # one row, e.g. df.iloc[0]
            data = {str(k): v for k, v in data.items()}
        if isinstance(data, Mapping):  # one row
            data = [data]
        if not isinstance(data, (list, tuple)):
            raise TypeError(
                f"`{name}` must be a dict row, a list of dict rows, a DataFrame or a 2-D array. "
                f"Received: {name} of type {type(data).__name__}"
            )
        if len(data) == 0:
            raise ValueError(f"`{name}` must hold at least one row. Received: {name}=[]")
        found_rows = _columns.row_columns(data, self.columns, name)
        for i, row in enumerate(data):
            self._check_names([str(key) for key in row], f"{name}[{i}]")
        return found_rows

    def _check_names(self, names: list[str], where: str) -> None:
        known = set(self.columns)
        missing = [c for c in self.columns if c not in names]
        unknown = [c for c in names if c not in known and c not in self.dropped_columns]
        if missing:
            raise ValueError(
                f"`{where}` lacks the columns {missing}; the model needs {self.columns} "
                "(pass None for a missing value)."
            )
        if unknown:
            raise ValueError(
                f"`{where}` has unknown columns {_labels.preview_values(unknown, 10)} "
                f"({len(unknown)} in all); the model knows {self.columns}."
            )

    def raw_batch(self, columns: Mapping[str, Any], name: str = "inputs") -> dict[str, np.ndarray]:
        """Turns feature columns into the raw batch `transform` takes.

        Every prediction input (the predictor, `tabular_dataset`, validation data; dict
        rows, DataFrames, arrays, JSON rows) becomes category text here. A number in a
        categorical column whose text is not a fitted category becomes the category that
        reads as the same number (``501`` -> ``"00501"``, ``1.5`` -> ``"1.50"``) when
        exactly one does; a boolean, or a text reading true / false in any case, becomes the
        category reading as the same truth value (``True`` -> ``"true"``, ``"true"`` ->
        ``"True"``); other strings are kept as sent. The exported SavedModel takes the
        category text itself, so a caller of it sends ``"00501"``.

        Args:
            columns: ``{column: values}`` holding every feature column.
            name: the argument name used in messages.

        Returns:
            ``{"numeric": float32 (n, n_numeric), "categorical": object (n, n_categorical)}``,
            a key only for a group that has columns.

        Raises:
            ValueError: for a missing feature column, or a non-numeric or infinite value in
                a numeric column (named).

        Example:
            >>> preproc.raw_batch({"age": [41], "city": ["Rome"]})["numeric"]
            array([[41.]], dtype=float32)
        """
        self._check_fitted()
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise ValueError(f"`{name}` lacks the columns {missing}; the model needs "
                             f"{self.columns}.")
        raw: dict[str, np.ndarray] = {}
        if self.numeric:
            raw["numeric"] = np.stack(
                [_columns.numeric_values(columns[c], c, name) for c in self.numeric_columns],
                axis=1,
            )
        if self.categorical:
            raw["categorical"] = np.stack(
                [_columns.category_values(columns[c], c, name, by_number)
                 for c, by_number in zip(self.categorical_columns, self._by_number)],
                axis=1,
            )
        return raw

    def _number_maps(self) -> list[dict[Any, str]]:
        """`_columns.number_categories` of each categorical column, in column order."""
        return [_columns.number_categories(c["categories"]) for c in self.categorical]

    def example_text(self, row: Mapping[str, np.ndarray]) -> str:
        """One row of a raw batch as ``column=value`` pairs in the training column order.

        `Learner.view_top_losses(preproc=...)` shows rows this way.

        Args:
            row: one row of a `raw_batch` (``{"numeric": (n_numeric,), ...}``).

        Returns:
            e.g. ``"age=41.0, city=Rome"`` (a missing number shows as nan, a missing
            category as an empty value).

        Example:
            >>> preproc.example_text({k: v[0] for k, v in preproc.raw_batch(cols).items()})
            'age=41.0, city=Rome'
        """
        values: dict[str, Any] = {}
        for group, names in (("numeric", self.numeric_columns),
                             ("categorical", self.categorical_columns)):
            if group in row:
                values.update(zip(names, np.asarray(row[group]).tolist()))
        order = self.feature_order or list(values)
        return ", ".join(f"{column}={values[column]}" for column in order if column in values)

    # ------------------------------------------------------------------ in-graph transform
    def _lookup_table(self) -> Any:
        """One hash table for every categorical column: ``"<column index>\\x1f<value>"`` -> id."""
        import tensorflow as tf

        if self._table is None:
            keys, ids = [], []
            for j, column in enumerate(self.categorical):
                for k, value in enumerate(column["categories"]):
                    keys.append(f"{j}{_KEY_SEPARATOR}{value}")
                    ids.append(k + 1)
            with tf.init_scope():
                self._table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(
                        tf.constant(keys, tf.string), tf.constant(ids, tf.int64)
                    ),
                    default_value=UNKNOWN_ID,
                )
        return self._table

    def transform(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Graph-traceable: a raw batch (see `raw_batch`) -> the model's inputs.

        Args:
            raw: ``{"numeric": float (batch, n_numeric), "categorical": string (batch,
                n_categorical)}``.

        Returns:
            ``{"numeric": standardized float32, "missing": 0/1 float32 flags,
            "categorical": int32 ids (0 = unknown)}``, keys only for groups with columns.

        Example:
            >>> preproc.transform({"numeric": tf.constant([[41.0]]),
            ...                    "categorical": tf.constant([["Rome"]])})["categorical"]
        """
        import tensorflow as tf

        self._check_fitted()
        out: dict[str, Any] = {}
        if self.numeric:
            x = tf.cast(raw["numeric"], tf.float32)
            missing = tf.math.is_nan(x)
            mean = tf.constant([c["mean"] for c in self.numeric], tf.float32)
            std = tf.constant([c["std"] for c in self.numeric], tf.float32)
            out["numeric"] = tf.where(missing, tf.zeros_like(x), (x - mean) / std)
            out["missing"] = tf.cast(missing, tf.float32)
        if self.categorical:
            values = tf.convert_to_tensor(raw["categorical"], tf.string)
            prefixes = tf.constant(
                [f"{j}{_KEY_SEPARATOR}" for j in range(len(self.categorical))], tf.string
            )
            keys = tf.strings.join([tf.broadcast_to(prefixes, tf.shape(values)), values])
            out["categorical"] = tf.cast(self._lookup_table().lookup(keys), tf.int32)
        return out

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """The fitted state as JSON-safe values (`from_config` reads it back).

        Example:
            >>> TabularPreprocessor.from_config(preproc.get_config()).columns
        """
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "numeric": [dict(c) for c in self.numeric],
            "categorical": [
                {"name": c["name"], "categories": list(c["categories"])} for c in self.categorical
            ],
            "dropped_columns": list(self.dropped_columns),
            "feature_order": list(self.feature_order),
            "category_form": CATEGORY_FORM,
            "labels": self.labels.get_config(),
        }

    @classmethod
    def from_config(cls, config: Any) -> TabularPreprocessor:
        """Rebuilds a fitted preprocessor from `get_config`'s dict.

        Args:
            config: the dict.

        Returns:
            The preprocessor.

        Raises:
            ValueError: for unknown, missing or invalid fields.

        Example:
            >>> clone = TabularPreprocessor.from_config(preproc.get_config())
        """
        _validate_config(config)
        preproc = cls()
        preproc.numeric = [
            {"name": c["name"], "mean": float(c["mean"]), "std": float(c["std"])}
            for c in config["numeric"]
        ]
        current = "category_form" in config
        preproc.categorical = [
            {"name": c["name"], "categories": list(c["categories"]) if current
             else _columns.current_categories(c["categories"])}
            for c in config["categorical"]
        ]
        preproc.dropped_columns = list(config["dropped_columns"])
        preproc.feature_order = list(config.get("feature_order", preproc.columns))
        preproc.labels = LabelEncoder.from_config(config["labels"])
        preproc._by_number = preproc._number_maps()
        preproc._fitted = True
        if not preproc.labels.is_fitted:
            raise ValueError("The config's labels are not fitted.")
        return preproc

    def save(self, folder: str | os.PathLike) -> None:
        """Writes ``preprocessor.json`` into `folder` (created if needed).

        Args:
            folder: the destination folder.

        Raises:
            TypeError: when ``folder`` is not a str or `os.PathLike`.
            ValueError: when the preprocessor is not fitted.
            FileExistsError: when ``folder`` is a file.

        Example:
            >>> preproc.save("my_preprocessor")
        """
        self._check_fitted()
        saving.write_json(saving.make_folder(folder) / CONFIG_FILE, self.get_config())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TabularPreprocessor:
        """Reads a preprocessor written by `save`.

        Args:
            folder: a folder holding ``preprocessor.json``.

        Returns:
            The fitted preprocessor.

        Raises:
            TypeError: if ``folder`` is not a str or `os.PathLike`.
            FileNotFoundError: if the folder or the file is missing (named).
            ValueError: for a malformed or invalid file (the file is named).

        Example:
            >>> preproc = TabularPreprocessor.load("my_preprocessor")
        """
        (path,) = saving.saved_files(folder, (CONFIG_FILE,), cls.__name__)
        try:
            return cls.from_config(saving.read_json(path))
        except (ValueError, TypeError) as err:
            raise saving.invalid_file(path, cls.__name__, err) from None

    def __repr__(self) -> str:
        return (
            f"TabularPreprocessor(numeric={len(self.numeric)}, categorical="
            f"{len(self.categorical)}, label_mode={self.label_mode!r})"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _validate_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ValueError(f"The config must be a JSON object. Received: {type(config).__name__}")
    if not _CONFIG_KEYS <= set(config) <= _CONFIG_KEYS | _OPTIONAL_KEYS:
        raise ValueError(
            f"The config must have the keys {sorted(_CONFIG_KEYS)} (and may have "
            f"{sorted(_OPTIONAL_KEYS)}). Received: {sorted(config)}"
        )
    saving.check_config_header(config, TabularPreprocessor.task, FORMAT_VERSION)
    numeric, categorical = config["numeric"], config["categorical"]
    if not isinstance(numeric, list) or not all(
        isinstance(c, dict) and set(c) == {"name", "mean", "std"} and isinstance(c["name"], str)
        and _is_number(c["mean"]) and _is_number(c["std"]) and c["std"] > 0
        for c in numeric
    ):
        raise ValueError("The config's `numeric` must list {name, mean, std} with std > 0.")
    if not isinstance(categorical, list) or not all(
        isinstance(c, dict) and set(c) == {"name", "categories"} and isinstance(c["name"], str)
        and isinstance(c["categories"], list)
        and all(isinstance(v, str) for v in c["categories"])
        and len(set(c["categories"])) == len(c["categories"])
        for c in categorical
    ):
        raise ValueError(
            "The config's `categorical` must list {name, categories} with distinct str categories."
        )
    names = [c["name"] for c in numeric + categorical]
    if not names or len(set(names)) != len(names):
        raise ValueError("The config must name at least one feature column, each once.")
    order = config.get("feature_order", names)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(names) or not all(
        isinstance(c, str) for c in order
    ):
        raise ValueError("The config's `feature_order` must list every feature column once.")
    if config.get("category_form", CATEGORY_FORM) != CATEGORY_FORM:
        raise ValueError(f"The config's `category_form` must be {CATEGORY_FORM}.")
    dropped = config["dropped_columns"]
    if not isinstance(dropped, list) or not all(isinstance(c, str) for c in dropped):
        raise ValueError("The config's `dropped_columns` must be a list of column names.")
    labels = config["labels"]
    if not isinstance(labels, dict) or labels.get("label_mode") not in _labels.LABEL_MODES:
        raise ValueError("The config's `labels` must be a fitted LabelEncoder config.")
