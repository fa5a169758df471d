"""Web: the pages readers reach through a digest's links (web.app: create_app).

web.pages renders them from the templates; web.app serves them and looks tokens up.
"""
