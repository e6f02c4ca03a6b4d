"""What the Python bench scripts share: strict flags, as bench/common.ts reads them for the TypeScript ones.

argparse lets the last of a repeated flag win silently (`--steps 5 --steps 50` runs 50 steps) and accepts
any unambiguous prefix of a flag; here a flag given twice is a usage error (exit 2) naming it, and
prefixes are refused (the parser must be built with allow_abbrev=False).
"""


def parse_strict(parser, argv):
    """parser.parse_args(argv), after refusing a flag given twice (as --flag V or --flag=V)."""
    if parser.allow_abbrev:
        raise ValueError("parse_strict: build the parser with allow_abbrev=False")
    seen = set()
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if name in seen:
                parser.error(f"{name} given twice; give it once")
            seen.add(name)
    return parser.parse_args(argv)
