"""Each run of a report's text is set in a font that draws it, and the scripts whose letters combine are shaped."""

from diagnosis.pdf_fonts import Face, Fonts, right_to_left, script_of, visual_lines

MAIN = Face("Main", "Main-Bold", covered=frozenset(map(ord, "Stone <&>,.: 1234")))
CJK = Face("Extra", "Extra", covered=frozenset(map(ord, "腎石 ,")))
BENGALI = Face("Beng", "Beng-Bold", covered=frozenset([*range(0x0980, 0x0A00), 0x0964, 0x0965, 0x200C, 0x200D,
                                                       *map(ord, " ,.")]), shaped=True)


def fonts(**scripts) -> Fonts:
    return Fonts(main=MAIN, cjk=CJK, scripts={"Bengali": BENGALI, **scripts})


def test_only_the_characters_the_main_font_lacks_are_set_in_the_fallback_font():
    assert fonts().markup("Stone <&> 腎石 ⊕") == ('Stone &lt;&amp;&gt; <font face="Extra">腎石</font> ⊕', False)
    assert Fonts(main=Face("Helvetica", "Helvetica-Bold")).markup("a<b 腎") == ("a&lt;b 腎", False)


def test_a_bengali_word_with_its_signs_joiners_and_danda_is_one_run_of_the_bengali_font_and_asks_for_shaping():
    # ক্‌ষ: a consonant, the virama and a zero-width non-joiner; । is the danda from the Devanagari block.
    markup, shaped = fonts().markup("Stone 4 কিডনি ক্\u200cষ।")

    assert markup == 'Stone 4 <font face="Beng">কিডনি ক্\u200cষ।</font>'
    assert shaped


def test_bold_text_uses_the_bold_face_of_its_script():
    assert fonts().markup("রহিম", bold=True) == ('<font face="Beng-Bold">রহিম</font>', True)


def test_a_script_without_an_installed_font_stays_in_the_main_font_unshaped():
    assert fonts(Bengali=None).markup("রহিম") == ("রহিম", False)


def test_the_blocks_of_shaped_scripts_are_recognised_and_others_are_not():
    assert [script_of(c) for c in "কकகกﻋعA腎ש"] == ["Bengali", "Devanagari", "Tamil", "Thai", "Arabic", "Arabic", None, None, None]


def width_in_letters(text: str) -> float:
    return float(len(text))


def test_arabic_is_joined_and_each_line_drawn_from_its_last_letter_with_lines_broken_in_reading_order():
    lines, rtl = visual_lines("علي محمد حسن", 8, width_in_letters)

    # Joined forms: ﻋ ﻠ ﻲ are the initial, medial and final forms of ع ل ي.
    assert lines == ["ﺪﻤﺤﻣ ﻲﻠﻋ", "ﻦﺴﺣ"]
    assert rtl


def test_latin_words_and_numbers_inside_hebrew_keep_their_own_order():
    lines, rtl = visual_lines("דוד כהן MRN 42", 100, width_in_letters)

    assert lines == ["MRN 42 ןהכ דוד"]
    assert rtl


def test_a_latin_comment_quoting_an_arabic_name_reads_left_to_right():
    lines, rtl = visual_lines("Patient علي has a 4 mm stone", 100, width_in_letters)

    assert lines == ["Patient ﻲﻠﻋ has a 4 mm stone"]
    assert not rtl


def test_only_text_with_right_to_left_letters_takes_the_right_to_left_layout():
    assert right_to_left("שלום") and right_to_left("Stone علي")
    assert not right_to_left("Stone, 4 mm") and not right_to_left("রহিম 腎")
