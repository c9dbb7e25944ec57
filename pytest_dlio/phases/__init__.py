"""Phases drive a plan against an ObjectStore: datagen, train, checkpoint. No backend knowledge here.

Each phase returns plain data (``DatagenStats``, ``TrainRun``, ``CheckpointStats``); turning it into what
a user reads (properties, lines, verdicts) is ``report/``'s job, and running phases in order with a
workload's state is the engine's.
"""
