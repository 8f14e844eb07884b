"""A small catalogue for the search tests: a dozen items whose words the tests know."""

from __future__ import annotations

import pandas as pd

from analytics import schema as S

ROWS: list[dict[str, str | None]] = [
    {S.ITEM_ID: "cap-1", S.TITLE: "SUPCO Relay/Capacitor Hard Start Kit",
     S.CATEGORY: "Industrial > Passive Components > Capacitors", S.BRAND: "Sealed Unit Parts",
     S.DESCRIPTION: "Relay/CAPACITOR hard start kit for single phase a/c units."},
    {S.ITEM_ID: "cap-2", S.TITLE: "15 Value Electrolytic Capacitors Assortment Box",
     S.CATEGORY: "Industrial > Passive Components > Capacitors", S.BRAND: "Joe Knows Electronics",
     S.DESCRIPTION: None},
    {S.ITEM_ID: "staple-1", S.TITLE: "Stanley Sharpshooter 1/2-Inch Staples (1000 Count)",
     S.CATEGORY: "Industrial > Fasteners > Staples", S.BRAND: "Stanley",
     S.DESCRIPTION: "Heavy-duty staples for insulation and roofing felt."},
    {S.ITEM_ID: "tape-1", S.TITLE: "Duck Brand Duct Tape, Silver",
     S.CATEGORY: "Industrial > Tapes, Adhesives & Sealants > Duct Tape", S.BRAND: "Duck",
     S.DESCRIPTION: "Strong tape for repairs; sticks to capacitors and cables alike."},
    {S.ITEM_ID: "thermo-1", S.TITLE: "Digital Thermometer with K-Type Probe",
     S.CATEGORY: "Industrial > Test, Measure & Inspect > Thermometers", S.BRAND: "Perfect-Prime",
     S.DESCRIPTION: "Measures temperature from -50 to 1300 C."},
    {S.ITEM_ID: "zh-1", S.TITLE: "不锈钢螺丝刀套装 Stainless Screwdriver Set",
     S.CATEGORY: "工具 > 手动工具 > 螺丝刀", S.BRAND: "小米",
     S.DESCRIPTION: "精密螺丝刀，适合电子维修。"},
    {S.ITEM_ID: "glove-1", S.TITLE: "Nitrile Gloves, Powder Free, Large",
     S.CATEGORY: "Industrial > Safety > Gloves", S.BRAND: "Medline", S.DESCRIPTION: None},
    {S.ITEM_ID: "bare-1", S.TITLE: None, S.CATEGORY: None, S.BRAND: None, S.DESCRIPTION: None},
]


def small_catalogue() -> pd.DataFrame:
    return pd.DataFrame(ROWS)
