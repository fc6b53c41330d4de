"""The engine behind the notebooks, in the order data takes through it:

``data`` (loaders and simulators) -> ``models`` (networks and the losses they train on) ->
``training`` (update budgets, the weight cache, checkpoints) -> ``evaluation`` (likelihood
estimators, partition functions, distances, the judge classifier) -> ``plotting``, with
``infra`` (configuration, input checks, atomic files, metrics, the notebook runner) under
all of them. ``CONTRIBUTING.md`` explains the layout. Importing the package has no side
effects.
"""

__version__ = "0.2.0"
