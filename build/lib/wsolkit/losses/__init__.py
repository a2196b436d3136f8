"""Losses shared by several methods."""

from wsolkit.losses.elb import ELB, elb

__all__ = ["ELB", "elb"]
