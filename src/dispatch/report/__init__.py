"""Report: what staff read after an issue went out, the last stage of the flow
(ingest → plan → render → deliver → track → feedback → report).

- ``figures``        an issue's figures from SQL aggregates; the counting rules live there;
- ``feedback_list``  the feedback rows staff list, filter, export and mark handled;
- ``words``          the Chinese words for feedback kinds and channels;
- ``sheets``         CSV (Excel's UTF-8) and XLSX files, written whole or not at all;
- ``timeline``       opens and clicks per period over the first days after sending;
- ``charts``         the staff web's charts as SVG (pure: data in, drawing out).

The track and feedback stages write the rows (events, feedback); this package only reads
them (and marks feedback handled).
"""
