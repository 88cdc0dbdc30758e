"""Command-line programs: prepare data, train, augment, evaluate."""
