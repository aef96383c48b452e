"""Helpers for ``bench/downloads.py``, the side-by-side download benchmark.

- `dlbench.system`: installing nginx/curl/aria2 with apt, machine facts, tool versions;
- `dlbench.procmon`: running a subprocess with a timeout, its wall time and peak RSS;
- `dlbench.servers`: the local hub, the payload files and the nginx "CDN";
- `dlbench.tools`: how each tool (curl, aria2c, huggingface_hub, hashlib, modeldepot) is run;
- `dlbench.report`: summaries, target ratios, and the text / Markdown / JSON reports.
"""
