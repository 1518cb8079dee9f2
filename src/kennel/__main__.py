from kennel.cli import main

main()
