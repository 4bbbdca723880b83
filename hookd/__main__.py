from hookd.cli.main import main

raise SystemExit(main())
