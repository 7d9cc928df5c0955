"""Scripts that draw the README's pictures (run from the repository root).

* ``make_contact_sheet``: ``python -m tools.make_contact_sheet --out
  docs/contact_sheet.jpg``, rendered crops of the procedural actions;
* ``make_joint_figure``: ``python -m tools.make_joint_figure --out
  docs/joints17.png``, the 17 joints and their names.
"""
