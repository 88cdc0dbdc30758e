"""Gradio pages: layout and event wiring only; all logic lives in tiger/ and turing_test/."""
