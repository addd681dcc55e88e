"""The self-contained HTML page of a results folder (`report.html`): the ablation table, the plots, the raw
latency distributions, the backend matrix, a sweep's ranking stability, provenance and caveats.

- `page.charts`: the plots, drawn by matplotlib as SVG and inlined as data URIs (no file, no font, no script);
- `page.content`: what the page shows, taken from the comparison's typed model (`comparison.analysis`), the
  backend matrix (`comparison.pivot`), a sweep's results (`comparison.sweep`) and the reports themselves;
- `page.render`: the page from its Jinja2 template (`templates/report.html.j2`), autoescaped, and its write;
- `page.run`: `detbench report DIR`, and the page `ablate`, `compare` and `demo` write beside their results.
"""
