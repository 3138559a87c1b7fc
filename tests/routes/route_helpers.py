"""What the route-state tests share (a module name unique under tests/, for pytest's prepend
import mode)."""

from __future__ import annotations

from collections.abc import Callable

from chatmodels._routes._state import RouteState

MakeState = Callable[..., RouteState]
