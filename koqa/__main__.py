"""``python -m koqa``: the same as the ``koqa`` command."""

if __name__ == "__main__":
    from koqa.cli import main

    main()
