"""Physician Turing tests: studies, readers, cases, answers, protocols, statistics, storage."""
