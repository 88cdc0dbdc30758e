"""Tiger Studio entry point: builds the Gradio app from ui/ and serves it on 127.0.0.1.

Defaults are embedded: the shipped model (models/tiger-tiny-ddti) and a SQLite database in the
app's data folder. Override with --model / --db / --port or TIGER_MODEL_DIR / TIGER_DB_URL.
"""
from __future__ import annotations

import argparse

import tiger  # noqa: F401  (applies the offline settings before anything else is imported)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="never 0.0.0.0 unless behind a proxy")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--model", default=None, help="local model folder (diffusers layout)")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL for the Turing-test store")
    parser.add_argument("--require-login", action=argparse.BooleanOptionalAction, default=None,
                        help="the generation pages ask for a study account; default: on when --host is not "
                             "loopback, or TIGER_REQUIRE_LOGIN=1")
    args = parser.parse_args(argv)
    require_login = args.require_login
    if require_login is None and not _is_loopback(args.host):
        require_login = True

    import uvicorn

    from ui.server import create_app

    app = create_app(model_dir=args.model, db_url=args.db, require_login=require_login)
    print(f"Tiger Studio on http://{args.host}:{args.port}/  (health: /health)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def _is_loopback(host: str) -> bool:
    """Whether the app is reachable from this machine only (then the generation pages stay open)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
