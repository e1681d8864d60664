"""Run a script on uvloop, for a like-for-like reference: python with_uvloop.py SCRIPT [ARGS...]

The bot runs on uvloop (adapters/runtime/eventloop.py); the anchors as shipped run on
asyncio's loop. This runs an anchor on uvloop too, so the report can show both ratios.
"""

import runpy
import sys

import uvloop

if __name__ == "__main__":
    script, *rest = sys.argv[1:]
    sys.argv = [script, *rest]
    uvloop.install()
    runpy.run_path(script, run_name="__main__")
