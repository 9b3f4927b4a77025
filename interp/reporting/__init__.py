"""``interp report``'s machinery: run profiles (per-stage sizes), resumable stages, one offline HTML report."""

from interp.reporting.collect import ReportItem, collect_items
from interp.reporting.html import ReportResult, write_report
from interp.reporting.profiles import PROFILES, STAGES, Profile, Stage
from interp.reporting.stamps import STAMP, StageStamp, read_stamp

__all__ = ["PROFILES", "STAGES", "STAMP", "Profile", "ReportItem", "ReportResult", "Stage", "StageStamp",
           "collect_items", "read_stamp", "write_report"]
