"""Each run of a report's text is set in a font that draws it, and the scripts whose letters combine are shaped."""

from diagnosis.pdf_fonts import Face, Fonts, script_of

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

    assert markup == 'Stone 4 <font face="Beng">কিডনি</font> <font face="Beng">ক্\u200cষ।</font>'
    assert shaped


def test_bold_text_uses_the_bold_face_of_its_script():
    assert fonts().markup("রহিম", bold=True) == ('<font face="Beng-Bold">রহিম</font>', True)


def test_a_script_without_an_installed_font_stays_in_the_main_font_unshaped():
    assert fonts(Bengali=None).markup("রহিম") == ("রহিম", False)


def test_the_blocks_of_shaped_scripts_are_recognised_and_others_are_not():
    assert [script_of(c) for c in "কकகกA腎"] == ["Bengali", "Devanagari", "Tamil", "Thai", None, None]
