"""Thin responders: parse, call one service function, render."""
