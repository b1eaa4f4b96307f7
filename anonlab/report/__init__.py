"""What an export leaves behind: the audit report, interchange files and the output check.

``audit`` builds the JSON/Markdown audit report (counts, settings and hashes; it refuses anything that
looks like a coordinate); ``interchange`` reads and writes MOT CSV and CVAT XML; ``verify`` checks that an
output keeps every stream property of its input and drops identifying metadata.
"""

from anonlab.report.audit import (
    REPORT_SCHEMA,
    UnsafeReportError,
    assert_report_is_safe,
    make_report,
    render_markdown,
    write_report,
)

__all__ = ["REPORT_SCHEMA", "UnsafeReportError", "assert_report_is_safe", "make_report", "render_markdown",
           "write_report"]
