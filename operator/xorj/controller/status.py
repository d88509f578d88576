"""Kept only for :mod:`xorj.watcher.follows`, which imports ``followed_traders`` from here: the status
builders now live beside each kind's reconciler (:mod:`xorj.controller.tradingstrategy.status`,
:mod:`xorj.controller.copytrade.status`, :mod:`xorj.controller.traderpool.status`), with the shared
condition rule in :mod:`xorj.controller.conditions`. Remove once the watcher imports the new place."""

from xorj.controller.tradingstrategy.status import followed_traders

__all__ = ["followed_traders"]
