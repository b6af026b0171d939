"""``python -m reference_gateway``: bad arguments are one line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from reference_gateway.__main__ import main


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--upstream", "ftp://example.com/v1"], "upstream_url"),
        (["--upstream", "http://127.0.0.1:1/v1", "--timeout", "0"], "timeouts"),
        (["--frobnicate"], "--frobnicate"),
        (["--upstream", "http://127.0.0.1:1/v1", "--max-body-bytes", "0"], "max_body_bytes"),
        (["--max-body-bytes", "1MB"], "--max-body-bytes"),
        (["--upstream", "http://127.0.0.1:1/v1", "--mcp-config", "/nonexistent/mcp.json"], "cannot read"),
        (["--upstream", "http://127.0.0.1:1/v1", "--web-search-profile", "news"], "webSearchProfiles"),
        (["--upstream", "http://127.0.0.1:1/v1", "--code-interpreter", "external"], "--code-interpreter-url"),
        (["--code-interpreter", "docker"], "--code-interpreter"),
        (["--routes", "/nonexistent/routes.json"], "cannot read"),
        (["--routes", "/nonexistent/routes.json", "--upstream", "http://127.0.0.1:1/v1"], "not both"),
        (["--upstream-api-kind", "grpc"], "--upstream-api-kind"),
        (["--upstream", "http://127.0.0.1:1/v1", "--history-cache-size", "-1"], "history_cache_entries"),
        (["--upstream", "http://127.0.0.1:1/v1", "--seal-key-file", "/nonexistent/seal.key"], "cannot read"),
        (["--upstream", "http://127.0.0.1:1/v1", "--seal-key-file", "/dev/null"], "at least 32 bytes"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, says):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "--help" in err
