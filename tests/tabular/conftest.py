"""Tiny tables for the tabular tests: a label a correct model can learn, with gaps."""

import numpy as np
import pandas as pd
import pytest

CITY_SHIFT = {"Rome": 1.0, "Oslo": -1.0, "Lima": 0.0}


def planted_table(n=300, seed=0, missing_every=0):
    """`label` is "yes" when `x + shift(city) > 0`; `noise` carries no signal.

    With `missing_every=k`, every k-th `x` is NaN and every (k+1)-th city is None.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    city = rng.choice(list(CITY_SHIFT), n)
    label = np.where(x + np.array([CITY_SHIFT[c] for c in city]) > 0, "yes", "no")
    df = pd.DataFrame({"x": x, "city": city.astype(object), "noise": rng.normal(5, 3, n),
                       "label": label})
    if missing_every:
        df.loc[::missing_every, "x"] = np.nan
        df.loc[::missing_every + 1, "city"] = None
    return df


@pytest.fixture(scope="session")
def table():
    """The `planted_table` factory."""
    return planted_table
