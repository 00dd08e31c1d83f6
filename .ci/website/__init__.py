"""The article site, rendered offline (`python .ci/docs.py html`): nbdev's processed notebooks -> static HTML pages with
the sidebar of `_quarto.yml`, clean API entries, local assets only, and a client-side search index.

pages   the pages, their titles and the sidebar's tree       cells   a notebook's cells -> HTML
widgets ipywidgets outputs from the saved widget state       links   heading ids, Quarto attributes, links rewritten
search  the search index                                     layout  the page template and the assets
build   all of it -> a folder                                check   a built site: links and anchors resolve, nothing
                                                                     is fetched from elsewhere
"""
