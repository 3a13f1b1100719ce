"""Support code the tests and the benchmarks share: real servers to drive, the git CLI, generated wikis.

Not part of the platform: nothing under wikibot.<component> imports it. It lives in the package so
test modules and bench scripts import it by name instead of from conftest or a script's folder.
"""
