from vdm.cli.main import main

main()
