from app import migrate


def test_db_current_prints_the_head_revision(runner):
    assert runner.ok("db", "current").output.strip() == migrate.head_revision()


def test_db_upgrade_is_idempotent(runner):
    first = runner.ok("db", "upgrade").output
    second = runner.ok("db", "upgrade").output
    assert first == second
    assert f"revision {migrate.head_revision()}" in first


def test_serve_requires_certfile_and_keyfile_together(runner, tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    result = runner.invoke("serve", "--certfile", str(cert))
    assert result.exit_code == 2
    assert "--certfile and --keyfile must be given together" in result.output


def test_version_and_help(runner):
    assert "tectonite" in runner.ok("--version").output
    help_text = runner.ok("--help").output
    assert "serve" in help_text and "db" in help_text
