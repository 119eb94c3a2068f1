"""`python -m campaign_cli` runs the same program as `campaign`."""

from campaign_cli.cli.app import main

raise SystemExit(main())
