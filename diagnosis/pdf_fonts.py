"""Fonts for the PDF reports: which font sets each run of a name or comment.

reportlab draws a blank for a glyph its font lacks instead of looking in another font, and sets each
character on its own unless told to shape. So the report picks the font per run of text: DejaVu Sans for
Latin, Greek and Cyrillic; a Noto Sans font per script for scripts whose letters combine (Bengali,
Devanagari, Tamil, Thai and others), set with HarfBuzz shaping; Noto Sans Arabic for Arabic, Persian and
Urdu; and Droid Sans Fallback for Chinese, Japanese and Korean. Arabic and Hebrew are joined and ordered here (``visual_lines``): reportlab's own
right-to-left support needs rlbidi, which is not packaged.
"""

from __future__ import annotations

import itertools
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

from reportlab.platypus.flowables import Flowable

logger = logging.getLogger(__name__)

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_NOTO = Path("/usr/share/fonts/truetype/noto")  # Debian's fonts-noto-core
_FONT_CANDIDATES = [(_DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf")]
_CJK_CANDIDATES = [
    Path("/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf"),  # "Full" beside it lacks Hangul
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
]
# Scripts written left to right whose vowel signs reorder or whose consonants join into conjuncts:
# unshaped, "কি" prints its vowel sign after the consonant and "দ্দ" as three glyphs.
SHAPED_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x0900, 0x097F, "Devanagari"), (0x0980, 0x09FF, "Bengali"), (0x0A00, 0x0A7F, "Gurmukhi"),
    (0x0A80, 0x0AFF, "Gujarati"), (0x0B00, 0x0B7F, "Oriya"), (0x0B80, 0x0BFF, "Tamil"),
    (0x0C00, 0x0C7F, "Telugu"), (0x0C80, 0x0CFF, "Kannada"), (0x0D00, 0x0D7F, "Malayalam"),
    (0x0D80, 0x0DFF, "Sinhala"), (0x0E00, 0x0E7F, "Thai"), (0x0E80, 0x0EFF, "Lao"),
    (0x1000, 0x109F, "Myanmar"), (0x1780, 0x17FF, "Khmer"), (0xA8E0, 0xA8FF, "Devanagari"),
)
# Arabic arrives already joined (presentation forms, see visual_lines) and is not shaped again; DejaVu
# Sans lacks the joined forms of Urdu letters such as ہ and ے, Noto Sans Arabic has them.
ARABIC_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),
)
SCRIPTS: tuple[tuple[int, int, str], ...] = SHAPED_SCRIPTS + tuple((a, b, "Arabic") for a, b in ARABIC_BLOCKS)


@dataclass(frozen=True)
class Face:
    regular: str
    bold: str
    covered: frozenset[int] = frozenset()
    shaped: bool = False


def script_of(character: str) -> str | None:
    """The script with a font of its own whose Unicode block holds the character, if any."""
    point = ord(character)
    return next((name for first, last, name in SCRIPTS if first <= point <= last), None)


def _joins_previous(character: str) -> bool:
    # Marks, joiners and punctuation such as the danda belong to the letters before them: set apart in
    # another font, they break the cluster HarfBuzz shapes.
    return unicodedata.category(character) in ("Mn", "Mc", "Me", "Cf", "Po")


@dataclass
class Fonts:
    """The report's fonts. ``markup`` turns plain text into reportlab paragraph markup."""

    main: Face
    cjk: Face | None = None
    scripts: dict[str, Face | None] = field(default_factory=dict)  # a script's face once looked up, None if missing
    script_dir: Path = _NOTO

    @property
    def regular(self) -> str:
        return self.main.regular

    @property
    def bold(self) -> str:
        return self.main.bold

    def script_face(self, script: str) -> Face | None:
        if script not in self.scripts:
            self.scripts[script] = _register_script(script, self.script_dir)
        return self.scripts[script]

    def face_for(self, character: str, previous: Face | None) -> Face | None:
        """The face that draws the character; None: the main font (which may lack it)."""
        point, script = ord(character), script_of(character)
        if previous is not None and point in previous.covered and (
                _joins_previous(character) or (script is None and point not in self.main.covered)):
            return previous
        if script is not None:
            face = self.script_face(script)
            if face is not None and point in face.covered:
                return face
        if not self.main.covered or point in self.main.covered:
            return None
        if self.cjk is not None and point in self.cjk.covered:
            return self.cjk
        return None

    def markup(self, text: str, *, bold: bool = False) -> tuple[str, bool]:
        """Paragraph markup of plain text with each run in a face that draws it, and whether a run
        needs shaping."""
        faces: list[Face | None] = []
        for character in text:
            faces.append(self.face_for(character, faces[-1] if faces else None))
        # A space between two runs of one face joins them: one run per line of Arabic keeps PDF readers
        # reading the line back in order, and fewer font switches make a smaller file.
        for index in range(1, len(text) - 1):
            face = faces[index - 1]
            if text[index] == " " and face is not None and faces[index + 1] is face and ord(" ") in face.covered:
                faces[index] = face
        parts, shaped = [], False
        position = 0
        for face, run in itertools.groupby(faces):
            length = len(list(run))
            chunk = escape(text[position:position + length])
            position += length
            if face is None:
                parts.append(chunk)
            else:
                shaped = shaped or face.shaped
                parts.append(f'<font face="{face.bold if bold else face.regular}">{chunk}</font>')
        return "".join(parts), shaped


def _register_script(script: str, directory: Path) -> Face | None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold = directory / f"NotoSans{script}-Regular.ttf", directory / f"NotoSans{script}-Bold.ttf"
    if not regular.is_file():
        logger.warning("No %s font found (Debian: fonts-noto-core): %s text prints blank in reports", script, script)
        return None
    bold = bold if bold.is_file() else regular
    name = f"Report{script}"
    font = TTFont(name, str(regular))
    pdfmetrics.registerFont(font)
    pdfmetrics.registerFont(TTFont(f"{name}-Bold", str(bold)))
    return Face(name, f"{name}-Bold", covered=frozenset(font.face.charToGlyph), shaped=script != "Arabic")


def right_to_left(text: str) -> bool:
    """Whether the text holds Arabic or Hebrew letters (or any other right-to-left ones)."""
    return any(unicodedata.bidirectional(character) in ("R", "AL") for character in text)


def visual_lines(text: str, width: float, measure: Callable[[str], float]) -> tuple[list[str], bool]:
    """Text holding right-to-left letters broken into lines no wider than ``width`` and each put in the
    order it is drawn from left to right; and whether the text reads right to left as a whole.

    Arabic letters take their joined forms first (Unicode presentation forms, which DejaVu Sans draws).
    Lines are broken in reading order and then reordered one by one, as the Unicode bidirectional
    algorithm asks: reordering the whole text first would put its end on the first line.
    """
    import arabic_reshaper
    from bidi import get_display

    joined = arabic_reshaper.reshape(text)
    strong = next((unicodedata.bidirectional(c) for c in joined if unicodedata.bidirectional(c) in ("L", "R", "AL")), "L")
    base = "L" if strong == "L" else "R"
    lines: list[str] = []
    for paragraph in joined.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and measure(candidate) > width:
                lines.append(line)
                candidate = word
            line = candidate
        lines.append(line)
    return [get_display(line, base_dir=base) for line in lines], base == "R"


_fonts: Fonts | None = None


def report_fonts() -> Fonts:
    """The report's fonts, registered with reportlab once per process."""
    global _fonts
    if _fonts is not None:
        return _fonts
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    bundled = Path(reportlab.__file__).parent / "fonts"
    for regular, bold in [*_FONT_CANDIDATES, (bundled / "Vera.ttf", bundled / "VeraBd.ttf")]:
        if regular.is_file() and bold.is_file():
            main = TTFont("ReportSans", str(regular))
            pdfmetrics.registerFont(main)
            pdfmetrics.registerFont(TTFont("ReportSans-Bold", str(bold)))
            face = Face("ReportSans", "ReportSans-Bold", covered=frozenset(main.face.charToGlyph))
            _fonts = Fonts(main=face, cjk=_register_cjk())
            return _fonts
    _fonts = Fonts(main=Face("Helvetica", "Helvetica-Bold"))
    return _fonts


def _register_cjk() -> Face | None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    path = next((path for path in _CJK_CANDIDATES if path.is_file()), None)
    if path is None:
        logger.warning("No CJK font found (Debian: fonts-droid-fallback): such names print blank in reports")
        return None
    font = TTFont("ReportFallback", str(path))
    pdfmetrics.registerFont(font)
    # Droid Sans Fallback has one face; bold CJK prints in it too.
    return Face("ReportFallback", "ReportFallback", covered=frozenset(font.face.charToGlyph))


def paragraph(text: str, style, fonts: Fonts):
    """A reportlab flowable for plain text: a Paragraph, shaped where a script needs it, or one that
    lays out right-to-left text itself."""
    from reportlab.platypus import Paragraph

    if right_to_left(text):
        return RightToLeftParagraph(text, style, fonts)
    markup, shaped = fonts.markup(text, bold=style.fontName == fonts.bold)
    if shaped:  # only then: shaping also turns Latin "fi" into a ligature that copies out as one character
        style = _variant(style, shaping=1)
    return Paragraph(markup, style)


def _variant(style, **changes):
    from reportlab.lib.styles import ParagraphStyle

    return ParagraphStyle(f"{style.name}-{'-'.join(changes)}", parent=style, **changes)


class RightToLeftParagraph(Flowable):
    """Text with Arabic or Hebrew letters: broken into lines at the width it is given, each line in
    drawing order, right-aligned when the text reads right to left; drawn by a Paragraph of those lines."""

    def __init__(self, text: str, style, fonts: Fonts) -> None:
        super().__init__()
        self.text, self.style, self.fonts = text, style, fonts
        self._inner = None

    def _layout(self, width: float):
        from reportlab.lib.enums import TA_RIGHT
        from reportlab.pdfbase.pdfmetrics import stringWidth
        from reportlab.platypus import Paragraph

        style = self.style
        usable = width - style.leftIndent - style.rightIndent
        lines, rtl = visual_lines(self.text, usable, lambda s: stringWidth(s, style.fontName, style.fontSize))
        bold = style.fontName == self.fonts.bold
        markup = "<br/>".join(self.fonts.markup(line, bold=bold)[0] for line in lines)
        self._inner = Paragraph(markup, _variant(style, alignment=TA_RIGHT) if rtl else style)
        return self._inner

    def wrap(self, availWidth, availHeight):
        self.width, self.height = self._layout(availWidth).wrap(availWidth, availHeight)
        return self.width, self.height

    def split(self, availWidth, availHeight):
        return self._layout(availWidth).split(availWidth, availHeight)

    def drawOn(self, canvas, x, y, _sW=0):
        self._inner.drawOn(canvas, x, y, _sW)

    def getSpaceBefore(self):
        return self.style.spaceBefore

    def getSpaceAfter(self):
        return self.style.spaceAfter
