"""`python -m hnmine`: the same as the `hnmine` command."""

from hnmine.cli import main

if __name__ == "__main__":
    main()
