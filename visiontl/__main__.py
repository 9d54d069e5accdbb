"""``python -m visiontl`` (also what ``torchrun -m visiontl`` starts)."""

from visiontl.cli import main

if __name__ == "__main__":
    main()
