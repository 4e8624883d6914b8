"""Constants of the community records source."""

from loaders.common.warehouse import ROOT

DATASET = "raw_communities"
PSGC_CSV = ROOT / "seeds" / "communities" / "psgc_2025q2.csv"
DEFAULT_FIGURES = ("estimated_population", "households")
