"""wikibot."""
