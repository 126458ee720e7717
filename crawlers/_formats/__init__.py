"""Private pure decoders of file formats, shared by the crawlers (never a crawler themselves)."""
