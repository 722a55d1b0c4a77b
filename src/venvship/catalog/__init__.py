"""Reading artifacts back for people: what an artifact holds and what changed between two
(``venvship inspect``, ``diff``), and the refs of a layout or the tags of a repository (``list``).
"""
