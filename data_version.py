#!/usr/bin/env python3
"""Publish a result folder to DagsHub (or any DVC remote and git host), or bring one back.

The data goes to the DVC remote (content-addressed: a re-upload of unchanged data sends nothing
and commits nothing); the .dvc pointer is committed to the repository's git side. The token
comes from DAGSHUB_USER_TOKEN, else (for --owner/--name on DagsHub) from the cache 'dagshub login'
filled; user: DAGSHUB_USER, else the token's DagsHub user, else --owner. It is never written to
disk beyond a private temporary file, never put in a URL and never printed. On DagsHub the
repository and the token's right to write are checked through its API before anything is sent
(host: DAGSHUB_CLIENT_HOST, default https://dagshub.com).

Examples:
  DAGSHUB_USER_TOKEN=... python data_version.py --upload --owner me --name jetson-power \\
      --local-dir-path raw_data --remote-dir-path raw_data/orin-nano-01/20261126-1200
  python data_version.py --download --owner me --name jetson-power \\
      --remote-dir-path raw_data/orin-nano-01/20261126-1200 --local-dir-path restored
  python data_version.py --download --all-devices --owner me --name jetson-power \\
      --remote-dir-path raw_data --local-dir-path dataset   # dataset/<device>/<run>, runs.csv

exit codes: 0 done; 1 the upload or download failed (the local data is untouched); 2 bad flags.
"""

from __future__ import annotations

import sys
from pathlib import Path

from common.cli import OneLineParser
from common.process import EXIT_INTERRUPTED


def parse_args(argv):
    parts = __doc__.split("\n\n")
    p = OneLineParser(description=parts[0] + "\n\n" + parts[1], epilog=parts[-1])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--upload", action="store_true", help="publish --local-dir-path")
    mode.add_argument(
        "--download",
        action="store_true",
        help="bring --remote-dir-path back into --local-dir-path (a new folder)",
    )
    p.add_argument(
        "--all-devices",
        action="store_true",
        help="with --download: every <device>/<run> under --remote-dir-path (a prefix such as "
        "raw_data), laid out as <local>/<device>/<run> plus one table of all runs (runs.csv)",
    )
    p.add_argument("--owner", default=None, help="DagsHub repository owner")
    p.add_argument("--name", default=None, help="DagsHub repository name")
    p.add_argument("--branch", default="main", help="git branch of the data repository")
    p.add_argument(
        "--commit", default=None, help="commit message (default: 'Add <remote-dir-path>')"
    )
    p.add_argument(
        "--local-dir-path",
        type=Path,
        default=Path("raw_data"),
        help="the result folder (upload source, download destination)",
    )
    p.add_argument(
        "--remote-dir-path",
        default="raw_data",
        help="path inside the data repository; namespace runs by device and run, "
        "e.g. raw_data/<device>/<run>, so that devices never write the same pointer",
    )
    p.add_argument(
        "--dvc-remote",
        default=None,
        help="DVC remote URL (HTTP, S3, local folder); default "
        "https://dagshub.com/<owner>/<name>.dvc",
    )
    p.add_argument(
        "--git-url",
        default=None,
        help="git URL for the pointers; default https://dagshub.com/<owner>/<name>.git",
    )
    p.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="where the git clone of the data repository is kept "
        "(default ~/.cache/edge-vision-benchmark/repos/...)",
    )
    p.add_argument("--retries", type=int, default=4, help="attempts for dvc push and git push")
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="overall deadline in seconds; a re-run resumes",
    )
    p.add_argument(
        "--net-timeout", type=int, default=30, help="DVC's connect and read timeouts, seconds"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    p.add_argument("--verbose", action="store_true", help="show dvc and git output (redacted)")
    args = p.parse_args(argv)
    if args.all_devices and not args.download:
        p.error("--all-devices goes with --download")
    if args.retries < 1 or args.timeout <= 0 or args.net_timeout <= 0:
        p.error("--retries, --timeout and --net-timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from publish.tools import PublishError
    from publish.upload import Settings, Target, describe, download, download_all, upload

    try:
        target = Target(
            args.owner,
            args.name,
            args.branch,
            args.remote_dir_path,
            args.dvc_remote,
            args.git_url,
            args.workspace,
        )
        settings = Settings(
            retries=args.retries,
            timeout_s=args.timeout,
            net_timeout_s=args.net_timeout,
            verbose=args.verbose,
        )
        if args.dry_run:
            print(
                describe(args.local_dir_path, target)
                if args.upload
                else f"would download {target.remote_dir_path} from {target.git_url} / "
                f"{target.dvc_remote} into {args.local_dir_path}"
            )
            return 0
        if args.upload:
            done = upload(
                args.local_dir_path, target, args.commit or f"Add {args.remote_dir_path}", settings
            )
            state = f"commit {done['commit'][:10]}" if done["commit"] else "nothing new to commit"
            print(
                f"uploaded and verified {args.local_dir_path} -> {done['pointer']} "
                f"(md5 {done['md5']}, {state})"
            )
        elif args.all_devices:
            from analysis.summary import write_dataset_table
            from common.layout import DATASET_TABLE

            done = download_all(args.local_dir_path, target, settings)
            write_dataset_table(args.local_dir_path)
            devices = len({device for device, _ in done["runs"]})
            print(
                f"downloaded {len(done['runs'])} runs of {devices} devices ({done['files']} "
                f"files, verified) -> {args.local_dir_path}; every run: "
                f"{args.local_dir_path / DATASET_TABLE}"
            )
        else:
            done = download(args.local_dir_path, target, settings)
            print(
                f"downloaded {done['files']} files (md5 {done['md5']}, verified) -> "
                f"{args.local_dir_path}"
            )
    except PublishError as exc:
        print(f"data_version: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # dvc and git got the terminal's SIGINT too and stopped
        print(
            "data_version: interrupted; only finished steps are in the upload journal, so the "
            "same command resumes",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
