"""Pipeline commands of the ``dgnn`` console script: ``run``, ``serve``, ``sweep``, ``ui``, ``predict``.

Prefect and MLflow are imported inside the handlers, so ``dgnn train`` and the data commands stay
fast. Every handler returns the exit status: 0, 1 when a run failed (one line on stderr naming the
failed step and cause), 2 for bad arguments or config, 130 / 143 when Ctrl-C / SIGTERM stopped it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cli import errors
from cli.run_setup import data_dir_of, prepare, stores_error, with_server
from cli.train import add_out_of_core_argument, add_training_arguments
from cli.tune_options import add_tune_arguments, check_budget


def _config_arg(args: argparse.Namespace):
    return str(Path(args.config).resolve()) if args.config else None


def _config_error(args: argparse.Namespace) -> int:
    """0 if the dataset/config arguments make a valid run config, else 2 after one error line."""
    from cli.train import run_config

    try:
        run_config(args)
    except Exception as err:  # noqa: BLE001
        return errors.bad_input(err)
    return 0


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    if summary.get("skipped"):
        print(summary["message"])
        return
    keys = [k for k in summary if k.endswith("_mean")]
    print(" ".join(f"{k}={summary[k]:.4f}" for k in keys))
    registered = summary["registered_model"]
    print(f"mlflow run {summary['mlflow_run_id']} in experiment {summary['experiment']} "
          f"({summary['tracking_uri']}); model {summary['model_uri']}"
          f"{' = ' + registered['model_uri'] if registered['model_uri'] else ''}"
          f"{' (champion)' if registered['champion'] else ''}; {registered['decision']}")


def _run(args: argparse.Namespace) -> int:
    if args.config == "tuned":
        args.config, args.tune = None, True
    problem = check_budget(args) if args.tune else None
    if problem:
        return errors.bad_input(problem)
    if _config_error(args):
        return 2
    if status := prepare(args):
        return status

    def work() -> dict:
        from flows.pipeline import run_pipeline

        config, tags = _config_arg(args), {}
        if args.tune:
            from flows.tune import run_tune
            from cli.tune import tune_parameters

            tuned = run_tune(**tune_parameters(args))
            config = tuned["best_config_file"]
            tags = {"tune_run_id": tuned["mlflow_run_id"], "tune_study": tuned["study"],
                    "tune_best_trial": tuned["best_trial"]}
        return run_pipeline(dataset=args.dataset, task=args.task, config=config, seed=args.seed,
                            split_seed=args.split_seed, device=args.device,
                            keep_checkpoints=args.keep_checkpoints, run_tags=tags, threads=args.threads,
                            out_of_core=args.out_of_core, dask_address=args.dask_address,
                            dask_workers=args.dask_workers, data_dir=data_dir_of(args), retrain=args.retrain)

    try:
        summary, server = with_server(work)
    except BaseException as err:  # noqa: BLE001 - the flow already closed its runs
        return errors.stopped("pipeline", err, "finished steps are kept, the MLflow runs closed as KILLED; "
                                               "rerun the same command to resume")
    if server is not None:
        summary["prefect_ephemeral_server"] = server
    _print_summary(summary, args.json)
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not args.cron and not args.interval:
        return errors.bad_input("give --cron EXPR or --interval SECONDS")
    if _config_error(args):
        return 2
    if status := prepare(args):
        return status
    from adapters.prefect import serving
    from adapters.process import lifeline
    from adapters.prefect.server import prefect_server

    owned = not os.environ.get("PREFECT_API_URL")
    # The ephemeral server has no scheduler: run a real one for as long as we serve.
    server = prefect_server(args.prefect_port) if owned else contextlib.nullcontext(os.environ["PREFECT_API_URL"])

    def report(problem: str) -> int:
        return errors.failed("serve", RuntimeError(f"{problem}: the flow run in progress ends too (its finished "
                                                   "steps are kept); rerun the same command to serve again"))

    try:
        with server as api_url:
            os.environ["PREFECT_API_URL"] = api_url
            print(f"Prefect API {api_url} (UI: {api_url.removesuffix('/api')})", file=sys.stderr, flush=True)
            from flows.pipeline import train_pipeline

            parameters = {"dataset": args.dataset, "task": args.task, "config": _config_arg(args),
                          "seed": args.seed, "split_seed": args.split_seed, "device": args.device,
                          "threads": args.threads, "data_dir": data_dir_of(args), "retrain": args.retrain}
            watch = lifeline.watching(lifeline.api_refused(api_url), report) if owned else contextlib.nullcontext()
            with watch:
                serving.serve(train_pipeline, name=args.name or f"dgnn-{args.dataset}-{args.task}",
                              parameters=parameters, cron=args.cron, interval=args.interval, api_url=api_url,
                              announce=not args.quiet)
    except BaseException as err:  # noqa: BLE001
        return errors.stopped("serve", err, "the flow run in progress was stopped (its finished steps are kept) "
                                            "and the scheduled runs removed; rerun the same command to serve again")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from dgnn.seeds import parse_seeds

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    try:
        seeds = parse_seeds(args.seeds)
        if not datasets:
            raise ValueError("--datasets is empty")
    except ValueError as err:
        return errors.bad_input(err)
    if any(_config_error(argparse.Namespace(**{**vars(args), "dataset": d})) for d in datasets):
        return 2
    if status := prepare(args):
        return status
    from flows.sweep import run_sweep

    try:
        result = run_sweep(datasets, seeds, task=args.task, config=_config_arg(args),
                           split_seed=args.split_seed, device=args.device, address=args.dask_address,
                           workers=args.workers, threads=args.threads, data_dir=data_dir_of(args))
    except BaseException as err:  # noqa: BLE001
        return errors.stopped("sweep", err, "finished runs are kept; rerun the same command to resume")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for dataset, row in result["datasets"].items():
            shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.endswith(("_mean", "_std")))
            print(f"{dataset}: {row['runs']} runs {shown}")
        print(f"sweep {result['sweep_id']}: {len(result['runs'])} runs in {result['seconds']:.1f}s "
              f"on {result['dask']}")
    return 0


def ui_command(host: str, port: int, uri: str | None = None) -> list[str]:
    """The ``mlflow ui`` command line against the project's store (single worker, no job runner)."""
    from adapters.process import settings

    uri = uri or settings.tracking_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    root = settings.artifact_root(uri)
    if root:
        command += ["--default-artifact-root", root]
    return command


def _ui(args: argparse.Namespace) -> int:
    from adapters.process import interrupts, settings, stores
    from adapters.prefect.server import can_listen, stop_process_group
    from dgnn.processes import end_with_owner

    if not can_listen(args.port, args.host):
        return errors.bad_input(f"port {args.port} on {args.host} is in use (another server?): "
                                "pass --port with a free one, or stop what listens there")
    if status := stores_error("ui", stores.prepare):
        return status
    uri = settings.tracking_uri()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    interrupts.raise_on_sigterm()
    # Its own session, ended with this process however it ends (kill -9 included): the server
    # and its workers never outlive the command.
    process = subprocess.Popen(ui_command(args.host, args.port, uri), env=env, start_new_session=True)
    end_with_owner(process.pid, group=True)
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        status = process.wait()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM
        stop_process_group(process)
        return errors.stopped("ui", err, "the MLflow UI stopped")
    if status:
        return errors.failed("ui", RuntimeError(f"the MLflow server exited with status {status}"))
    return 0


def _read_nodes(args: argparse.Namespace) -> list[int]:
    text = args.nodes if args.nodes is not None else Path(args.nodes_file).read_text()
    items = [t for t in text.replace(",", " ").split() if t]
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ValueError("node ids must be integers (0..n-1 of the stored graph)") from None


def _prediction(args: argparse.Namespace):
    """The predictions frame: of a graph given as files (--edges), else of stored node ids."""
    from adapters.mlflow.model import predict, predict_new_graph

    if args.edges is not None:
        return predict_new_graph(args.model_uri, args.edges, args.nodes)
    return predict(args.model_uri, args.node_ids)


def _predict(args: argparse.Namespace) -> int:
    if args.edges is not None and args.nodes is None:
        return errors.bad_input(ValueError("--edges needs --nodes NODES_FILE (the nodes table, as for `dgnn import`)"))
    if args.edges is None:
        try:
            args.node_ids = _read_nodes(args)
            if not args.node_ids:
                raise ValueError("no node ids given")
        except (OSError, ValueError) as err:
            return errors.bad_input(err)
    import warnings

    warnings.filterwarnings("ignore", module="mlflow")
    try:
        frame = _prediction(args)
    except Exception as err:  # noqa: BLE001
        return errors.status_of("predict", err)
    if args.json:
        print(json.dumps(frame.to_dict(orient="records")))
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run the tracked pipeline once (Prefect flow + MLflow runs)")
    add_training_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--tune", action="store_true", help="first run `dgnn tune` (same options; "
                                                       "also --config tuned), then the pipeline with its best config")
    add_tune_arguments(p)
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep the per-step trainer checkpoints after a successful run")
    p.add_argument("--retrain", action="store_true",
                   help="train even when an imported dataset's source is unchanged and this data version, "
                        "config and seed were trained already (default: say so and stop)")
    add_out_of_core_argument(p)
    p.add_argument("--dask-workers", type=int, metavar="N",
                   help="run the propagation row blocks (the propagate stage, an out-of-core run's "
                        "re-propagations) on a local Dask cluster of N workers; --dask-address: on a scheduler")
    p.set_defaults(handler=_run)

    p = subparsers.add_parser("serve", help="serve the pipeline as a scheduled Prefect deployment")
    add_training_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cron", help='cron schedule, e.g. "0 3 * * *" (03:00 every day)')
    p.add_argument("--interval", type=float, help="run every SECONDS instead of a cron schedule")
    p.add_argument("--name", help="deployment name (default dgnn-<dataset>-<task>)")
    p.add_argument("--retrain", action="store_true",
                   help="train even when an imported dataset's source is unchanged and this data version, "
                        "config and seed were trained already (default: say so and stop)")
    p.add_argument("--prefect-port", type=int, default=4200,
                   help="port of the Prefect server started when PREFECT_API_URL is unset (default "
                        "4200, or a free one)")
    p.set_defaults(handler=_serve)

    p = subparsers.add_parser("sweep", help="many pipeline runs in parallel on Dask")
    add_training_arguments(p)
    p.set_defaults(dataset=None)
    p.add_argument("--datasets", default="cora", help="comma-separated dataset names")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,3")
    p.add_argument("--dask-address", help="tcp://host:port of a dask.distributed scheduler "
                                          "(default: a local cluster)")
    p.add_argument("--workers", type=int, default=2, help="workers of the local cluster (default 2)")
    p.set_defaults(handler=_sweep)

    p = subparsers.add_parser("ui", help="MLflow UI on 127.0.0.1 against the project's store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(handler=_ui)

    p = subparsers.add_parser("predict", help="predict node classes with a logged model: nodes of its own "
                                              "graph by id, or every node of a new or grown graph")
    p.add_argument("--model-uri", "--model", required=True,
                   help="runs:/<id>/model, models:/dgnn-cora-classify/<version> or models:/NAME@champion")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--nodes", help="comma-separated node ids of the trained graph, e.g. 0,5,9; with "
                                       "--edges: the nodes table of the new graph (as for `dgnn import`)")
    group.add_argument("--nodes-file", help="file of node ids (whitespace or comma separated)")
    p.add_argument("--edges", help="edges file of a new or grown graph (as for `dgnn import`): its own Â and "
                                   "propagations, the model's weights; labels given in --nodes are the known ones")
    p.add_argument("--json", action="store_true", help="JSON records instead of CSV")
    p.set_defaults(handler=_predict)
