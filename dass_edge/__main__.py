"""``python -m dass_edge``: the CLI, so that ``torchrun -m dass_edge search ...`` starts one copy per rank."""

from dass_edge.cli.app import main

if __name__ == "__main__":
    main()
