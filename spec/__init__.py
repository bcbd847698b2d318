"""The abstract SilkRoad switch that the proofs are about, and the check that the model refines it.

``spec.system`` is the abstract system, written once over a ``Domain`` (the
Ops of ``model.decisions`` plus the few structure operations a state needs):
its state, its named actions (each a guard of named conjuncts and an effect),
and the PCC property with the residual risks it excuses.

* ``spec.symbolic`` gives it Z3 terms: ``proofs/`` unroll it for BMC and
  k-induction.
* ``spec.concrete`` gives it Python values and ``spec.abstraction`` maps a
  concrete ``model.switch.Switch`` onto its state (the refinement mapping α);
  ``spec.check`` checks that every step the model takes is a step of the
  abstract system, at the step where it is not.

So a bug in ``model/cpu.py`` that the proofs cannot see (they are about the
abstract system) shows up at the first step where the model leaves it.
"""
