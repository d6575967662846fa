from ecert_cli import main

main()
