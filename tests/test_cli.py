"""The `ktlite` command line."""

import re

import pytest

import ktlite
from ktlite import __version__, cli


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_serve_on_a_missing_folder_exits_with_one_line(tmp_path, capsys):
    pytest.importorskip("fastapi")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ktlite serve: error:") and "Traceback" not in err


def test_serve_on_an_address_it_cannot_listen_on_says_so_before_loading(monkeypatch, capsys):
    pytest.importorskip("fastapi")
    import socket

    import ktlite.predictor

    monkeypatch.setattr(ktlite.predictor, "load_predictor",
                        lambda path: pytest.fail("the predictor loaded"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv, message in (
            (["--port", str(port)], f"(Address already in use). Received: host='127.0.0.1', "
                                    f"port={port}"),
            (["--host", "192.0.2.1"], "(Cannot assign requested address). Received: "
                                      "host='192.0.2.1', port=8000"),
        ):
            with pytest.raises(SystemExit) as exit_info:
                cli.main(["serve", "some_folder", *argv])
            assert exit_info.value.code == 2
            err = capsys.readouterr().err
            assert err.startswith("ktlite serve: error: `host` and `port` must be an address "
                                  "this machine can listen on "), err
            assert err.rstrip().endswith(message), err


def test_serve_starts_uvicorn_with_timeouts_and_a_connection_limit(monkeypatch):
    pytest.importorskip("fastapi")
    import uvicorn

    import ktlite.predictor
    from tests.apps.fakes import FakePredictor

    seen = {}
    monkeypatch.setattr(ktlite.predictor, "load_predictor", lambda path: FakePredictor())
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    assert cli.main(["serve", "some_folder", "--port", "8123", "--max-batch-size", "4",
                     "--max-explain-words", "50", "--max-explain-chars", "400",
                     "--max-body-bytes", "8000000"]) == 0
    assert seen["port"] == 8123 and seen["app"].max_batch_size == 4
    assert seen["app"].max_body_bytes == 8_000_000
    assert seen["app"].max_explain_words == 50 and seen["app"].max_explain_chars == 400
    assert seen["http"].header_timeout_s == 10.0 and seen["app"].body_timeout_s == 10.0
    assert seen["timeout_keep_alive"] == 5 and seen["limit_concurrency"] == 256


@pytest.mark.parametrize("argv, message", [
    (["demo", "--epochs", "0"], "argument --epochs: expected a positive int, received '0'"),
    (["demo", "--epochs", "1.5"], "argument --epochs: expected a positive int, received '1.5'"),
    (["demo", "--lr", "abc"], "argument --lr: expected a positive number, received 'abc'"),
    (["serve", "p", "--port", "abc"], "argument --port: expected a port in 1..65535, received"),
    (["serve", "p", "--port", "70000"], "argument --port: expected a port in 1..65535"),
    (["serve", "p", "--max-wait-ms", "nan"],
     "argument --max-wait-ms: expected a number of milliseconds >= 0, received 'nan'"),
    (["serve", "p", "--max-wait-ms", "-1"], "argument --max-wait-ms: expected a number of"),
    (["serve", "p", "--max-explain-chars", "0"],
     "argument --max-explain-chars: expected a positive int, received '0'"),
    (["serve", "p", "--max-body-bytes", "1e6"],
     "argument --max-body-bytes: expected a positive int, received '1e6'"),
])
def test_bad_numbers_are_refused_naming_the_option_and_what_it_takes(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "_positive" not in err and "_port" not in err


def test_the_serve_defaults_are_the_apps_own():
    import inspect

    pytest.importorskip("fastapi")
    from ktlite.apps import APIApp

    app_defaults = inspect.signature(APIApp).parameters
    parsed = vars(cli.build_parser().parse_args(["serve", "p"]))
    for name in ("max_batch_size", "max_wait_ms", "max_body_bytes", "max_explain_words",
                 "max_explain_chars"):
        assert parsed[name] == app_defaults[name].default, name


def test_help_shows_every_default(capsys):
    for command, defaults in (("demo", ["(default: 2)", "(default: 64)"]),
                              ("serve", ["(default: 127.0.0.1)", "(default: 8000)",
                                         "(default: 32)", "(default: 5.0)",
                                         "(default: 1048576)", "(default: 1000)",
                                         "(default: 20000)"])):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert all(default in out for default in defaults), (command, out)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-0.01"])
def test_demo_rejects_a_learning_rate_that_is_not_positive(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--lr", value])
    assert exit_info.value.code == 2 and "positive number" in capsys.readouterr().err


def test_demo_refuses_an_output_it_cannot_write_before_training(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    for output in (tmp_path / "notes.txt", tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["demo", "--output", str(output)])
        assert exit_info.value.code == 2
        assert "folder ktlite did not write" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_demo_with_a_learning_rate_trains_at_it_without_sweeping(tmp_path, capsys, monkeypatch):
    class Stop(Exception):
        pass

    def no_sweep(self, *args, **kwargs):
        raise AssertionError("lr_find ran though --lr was given")

    def fit_onecycle(self, lr, epochs, *args, **kwargs):
        raise Stop(lr, epochs)

    monkeypatch.setattr(ktlite.Learner, "lr_find", no_sweep)
    monkeypatch.setattr(ktlite.Learner, "fit_onecycle", fit_onecycle)
    with pytest.raises(Stop) as stop:
        cli.main(["demo", "--max-train", "60", "--max-test", "20", "--epochs", "1",
                  "--lr", "3e-4", "--output", str(tmp_path / "predictor")])
    assert stop.value.args == (3e-4, 1)
    assert "1/4 lr_find: skipped; training with --lr 3.00e-04" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_small_slice(tmp_path, capsys):
    # In this process: `python -m ktlite.cli` itself runs in tests/apps/test_server.py.
    output = tmp_path / "predictor"
    code = cli.main(["demo", "--max-train", "300", "--max-test", "150", "--epochs", "1",
                     "--batch-size", "8", "--output", str(output)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "4/4 save the predictor" in stdout
    assert "300 training and 150 test texts" in stdout
    # Without --lr the demo trains at the finder's default suggestion.
    default = re.search(r"basin=([0-9.e+-]+)[,;].*training with lr=([0-9.e+-]+)", stdout)
    assert default and default.group(1) == default.group(2), stdout[-2000:]
    assert (output / "ktlite.json").is_file()
