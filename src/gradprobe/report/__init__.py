"""Report: the frozen result types, and their renderers (text, terminal, JSON, HTML, plots).
Renderers never compute and never import the checker: the result types can be imported from
any stage."""
