def test_help_lists_groups(cli):
    run = cli.ok("--help")
    for group in ("users", "channels", "segment"):
        assert group in run.stdout
