"""Torch thread count: the choice rules of ``dgnn.threads`` and ``dgnn train --threads``."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from cli.main import main as train_main
from dgnn.threads import NODES_PER_THREAD, available_cores, choose_threads


@pytest.fixture
def no_thread_env(monkeypatch):
    monkeypatch.delenv("DGNN_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)  # the count is process-wide


def test_size_rule_one_thread_for_small_graphs_up_to_the_cores_for_big_ones(no_thread_env):
    cores = available_cores()
    assert choose_threads(2708) == 1  # Cora
    assert choose_threads(NODES_PER_THREAD - 1) == 1
    assert choose_threads(2 * NODES_PER_THREAD) == min(2, cores)
    assert choose_threads(10**9) == cores
    assert choose_threads(10**9, processes=cores) == 1  # a local sweep's workers share the cores
    assert choose_threads(10**9, processes=2 * cores) == 1


def test_explicit_choices_win_in_order(no_thread_env):
    no_thread_env.setenv("OMP_NUM_THREADS", "3,2")  # one count per nesting level: the outer one
    assert choose_threads(10**9) == 3 and choose_threads(10) == 3
    no_thread_env.setenv("DGNN_THREADS", "5")
    assert choose_threads(10) == 5
    assert choose_threads(10, requested=2) == 2
    no_thread_env.setenv("OMP_NUM_THREADS", "lots")  # malformed: ignored, as torch does
    no_thread_env.delenv("DGNN_THREADS")
    assert choose_threads(10) == 1


@pytest.mark.parametrize("requested,env,message", [
    (0, None, "--threads 0: give a positive thread count"),
    (None, "zero", "DGNN_THREADS='zero' is not a positive integer"),
    (None, "0", "DGNN_THREADS='0' is not a positive integer"),
])
def test_bad_thread_counts_fail_with_one_line(no_thread_env, requested, env, message):
    if env is not None:
        no_thread_env.setenv("DGNN_THREADS", env)
    with pytest.raises(ValueError, match=message) as caught:
        choose_threads(10, requested=requested)
    assert "\n" not in str(caught.value)


def _train(args, config, capsys) -> dict:
    assert train_main(["train", "--dataset", "cora", "--config", str(config), "--json", "--quiet", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args,env,expected", [
    (["--threads", "1"], {}, 1),
    (["--threads", "2"], {"OMP_NUM_THREADS": "1"}, 2),
    ([], {"DGNN_THREADS": "2"}, 2),
    ([], {}, 1),  # Cora is small: one thread whatever the core count
])
def test_dgnn_train_trains_with_the_chosen_count(tmp_data_dir, shared_datasets, no_thread_env, capsys,
                                                 args, env, expected):
    """The summary's ``threads`` is torch.get_num_threads() read after training (a short config:
    the count is chosen before the first step, whatever the schedule)."""
    from flows_conftest import TINY

    config = tmp_data_dir.parent / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    no_thread_env.setenv("DGNN_DATA_MIRROR", str(shared_datasets))
    for key, value in env.items():
        no_thread_env.setenv(key, value)
    torch.set_num_threads(3)  # what an earlier caller left: replaced by the choice
    summary = _train(args, config, capsys)
    assert summary["threads"] == expected == torch.get_num_threads()
    assert 0.5 < summary["test_acc_mean"] <= 1


def test_dgnn_train_rejects_a_non_positive_thread_count(capsys):
    with pytest.raises(SystemExit) as caught:
        train_main(["train", "--threads", "0"])
    assert caught.value.code == 2 and "'0' is not a positive integer" in capsys.readouterr().err
