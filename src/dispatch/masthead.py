"""The bulletin's name and its publisher, as readers read them: the one place for both."""

BULLETIN = "许昌竞争情报快递"
INSTITUTE = "许昌市科学技术情报研究所"
