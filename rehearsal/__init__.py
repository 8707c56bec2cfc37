"""Rehearse the release pipeline of template.yaml locally, against an in-process AWS emulator."""
